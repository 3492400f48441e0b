"""ecgllm."""
