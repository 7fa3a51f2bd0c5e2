"""Vertebral levels (no Qt): anatomy and naming, label numberings, a study's labelling and its storage, automatic
labelling backends (core.spine.autolabel) and their evaluation against reference label maps."""
