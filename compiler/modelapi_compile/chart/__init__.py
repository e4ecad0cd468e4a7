"""The chart's static templates: copied verbatim into every build, never generated."""
