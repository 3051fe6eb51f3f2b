"""Helpers of tools/bench (side-by-side benchmarks of Pillion, nginx, HAProxy and nghttpx)."""
