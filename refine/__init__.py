"""Memory-augmented GAN refinement of rendered frames.

Not built yet: nothing here is exposed.
"""
