"""One module per model family; each registers a :class:`~spine_det.modeling.registry.ModelSpec` on import.

:func:`spine_det.modeling.registry.load_families` imports every module here, so adding a family is
adding a module (and its configs). Keep these modules cheap to import: name heavy parts as
``"module:attr"`` strings or import them inside functions.
"""
