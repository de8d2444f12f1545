"""Code shared by every service: contracts, subjects, settings, bus, clock, runner."""
