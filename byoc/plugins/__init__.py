"""The plugin API: pluggy hook specifications and plugin discovery (entry point group
``byoc.plugins``)."""
