"""Converters between our models and other systems', one module per foreign format.

- ``ctranslate2``: export to CTranslate2, the C++ inference engine (``transformer export``).
- ``torch_nn``: the weights of ``torch.nn.Transformer``'s encoder and decoder stacks, both ways.

Each is checked against the other system itself (tests/equivalence). The optional packages they need
(``ctranslate2``) are imported only when used.
"""
