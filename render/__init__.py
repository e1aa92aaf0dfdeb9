"""Rasterizer backends, shading, keyframe background matching, compositing.

Not built yet: nothing here is exposed.
"""
