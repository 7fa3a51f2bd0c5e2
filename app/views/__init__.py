"""Image views: 2D slice views and the 3D VTK view."""
