"""OpenCV imported once with its own thread pool disabled.

DataLoader workers are forked; an OpenCV pool started in the parent can deadlock a forked child
(seen as a hang at the first batch). Parallelism comes from the workers instead.
"""
import cv2

cv2.setNumThreads(0)
cv2.ocl.setUseOpenCL(False)

__all__ = ["cv2"]
