"""The GAN room: StyleGAN2 (and the seeds' DCGAN) networks, training and generation.

Not built yet: see the open issue "The GAN room". This room must know nothing about EEG.
"""
