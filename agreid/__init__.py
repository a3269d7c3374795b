"""agreid: aerial-ground person re-identification framework."""
__version__ = "0.1.0"
