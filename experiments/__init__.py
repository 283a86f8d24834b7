"""Pipelines behind the tables and figures; imports the libraries, never the reverse."""
