"""Engines train members and emit epoch records (`reglab.records`); the rest of reglab never cares which ran."""
