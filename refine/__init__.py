"""Memory-augmented GAN refinement of rendered frames (Yi et al. 2020).

`refine.memory` holds the memory network (keys, identity values, ages; nearest-slot reading, the
threshold triplet loss, update-or-replace-oldest writing), `refine.networks` the AdaIN U-Net
generator, the conditional PatchGAN discriminator and the memory's query encoder. Training, and
its use by `personalize` and `generate`, come next: nothing here is on the command line yet.
"""
