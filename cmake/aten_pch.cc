// Anchor for the shared ATen precompiled header (see cmake/SaeTargets.cmake).
