"""Analysis of integrated data: merging, symmetry, resolution shells, statistics, stream
comparison, accuracy against a known truth, plots and the look at one reflection's pixels.

Modules: ``merge`` (merge_streams, Merger), ``hkl`` (CrystFEL ``.hkl`` reflection lists),
``symmetry`` (CrystFEL point groups), ``shells`` (resolution shells), ``statistics``
(check_hkl/compare_hkl figures), ``matching`` (crystals and observations of two streams),
``compare`` (compare_streams), ``report`` (text and JSON of a comparison), ``accuracy``
(against noise-free truth), ``plots`` (PNG figures), ``inspect`` (pixels behind one
reflection), ``maxima`` (a frame's local maxima).  The unit cell, 1/d and centring absences
are in :mod:`streamfilter.crystal`.  Nothing is imported here, so importing one module does
not load the others.
"""
