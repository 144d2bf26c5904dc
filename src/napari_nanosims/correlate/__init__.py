"""Correlative work: external images (EM, FISH, confocal, Raman) registered to the
NanoSIMS field, resampled onto its pixels, and ROIs read from and written to other
programs' files.

* ``registration.py``: :func:`register_images` and :class:`ImageRegistration` (landmark
  fits, leave-one-out error, JSON);
* ``_intensity.py``: mutual-information refinement (SimpleITK, the ``[correlate]`` extra);
* ``resample.py``: :func:`resample` an external image or label image onto the NanoSIMS
  grid;
* ``rois.py``: :func:`read_rois` (ImageJ/OpenMIMS, LANS, painted masks, through a
  registration when their image is not the NanoSIMS one).

It sits above ``analysis`` and ``export`` (it writes its JSON through
``export/_files.py``) and below ``steps``.
"""
