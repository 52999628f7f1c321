"""Training: self-supervised Monodepth2 (modes M, S, MS) and the supervised metric ViT (mode metric):
`depth-node train --config FILE`.

config (YAML → dataclasses, overrides, validation) · sources + bag_frames (KITTI/synthetic folders, frame
folders, bags, videos) · data (cached sequences, triplets, augmentation, sampler) · losses + geometry
(photometric loss, automask, smoothness, segmentation term) · loop (the one training loop: epochs, checkpoints,
resume, signals, validation, export) · trainer / metric_trainer (what is trained, through the loop's hooks) ·
run (the command's body) · distributed (torchrun/DDP) · synth_data (rendered drives) · report (HTML at the end).
"""
