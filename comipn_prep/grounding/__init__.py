"""Stage 2 of the pipeline: ground noun phrases to image regions and save the best ones as crops.

Import each name from the module it lives in: ``driver`` (``GroundConfig``, ``Grounder``, ``ground``,
``ground_split``), ``manifest``, ``nps_input``, ``selection``, ``shards``, ``detector``, ``clip_matcher``,
``tensor_crops``."""
