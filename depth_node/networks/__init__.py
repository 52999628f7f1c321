"""PyTorch networks: Monodepth2 family and the Depth-Pro-style metric ViT."""
