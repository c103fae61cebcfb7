"""Engines train members and emit epoch records (`reglab.kit.records`); the rest of reglab never cares which ran."""
