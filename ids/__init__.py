"""Per-layer intrusion detection for IoT networks, trained on ToN-IoT.

Importing this package is cheap: no folders, no logging set-up, no TensorFlow.
"""

__version__ = "0.1.0"
