"""Optional rasterizer backends, one module per package they wrap.

Each module imports its package at the top, so importing it fails where the package is missing;
`render.rasterize` registers only the ones that import. Each defines
`rasterize(screen_vertices, faces, (H, W), cull_backfaces) -> Fragments` with the conventions of
the torch reference backend in `render.rasterize` (which the tests compare them against):
numba_backend (CPU, the default there), nvdiffrast_backend (CUDA, the default there) and
pytorch3d_backend.
"""
