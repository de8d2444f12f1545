"""LLM Trading Arena: five services over NATS sharing only ``services.common``."""
