"""Search: the space of points, what each key of a point does, and the plan of members (point × fold × seed)."""
