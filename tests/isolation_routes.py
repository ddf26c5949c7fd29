"""Routes without an object id in the URL, with where their tenant isolation is tested.
Later apps add theirs here."""

NON_OBJECT_ROUTES: dict[str, str] = {}
