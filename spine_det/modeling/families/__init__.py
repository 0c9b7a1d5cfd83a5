"""One module per model family; each registers a :class:`~spine_det.modeling.registry.ModelFamily` on import.

:func:`spine_det.modeling.registry.load_families` imports every module here, so adding a family is
adding a module (and its configs). Keep these modules cheap to import: name the parts in the layers
above (tools, engine, config, benchmark) as ``"module:attr"`` references, checked when the family
registers and imported when used.
"""
