"""Kernels and speed-ups: how the CPU runs the paper's model faster, kept apart from the model itself.

Nothing here changes what the model computes (up to float rounding, or by a stated approximation for int8):

- ``linear``: ``Linear``, an ``nn.Linear`` whose CPU inference uses weights prepacked for oneDNN, or int8.
- ``dropout``: dropout with a cheaper random mask on the CPU, and relu + dropout in one step.
- ``packing``: the position-wise work of the encoder on the real positions of a padded batch only.

These modules import only torch; the model's modules import them. Measured effects are in
``docs/performance.md``.
"""
