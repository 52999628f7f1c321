"""Self-supervised Monodepth2 training (modes M, S, MS): `depth-node train --config FILE`.

config (YAML → dataclasses, overrides, validation) · sources (KITTI/synthetic folders, frame folders, bags,
videos) · data (cached sequences, triplets, augmentation, sampler) · losses + geometry (photometric loss,
automask, smoothness, segmentation term) · trainer (loop, checkpoints, validation, export) · distributed
(torchrun/DDP) · synth_data (rendered drives) · report (HTML at the end).
"""
