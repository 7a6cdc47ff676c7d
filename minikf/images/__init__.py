"""Container images for the docker platform (and the clusters that load them).

base.py builds a Debian base from a local root filesystem (no registry needed); build.py
builds the runtime and server images from images/ with the docker SDK, tagged by content.
"""
