"""LION / UniLION linear-group-RNN voxel backbones and the 3D detector built on them."""
