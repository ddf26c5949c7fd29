"""Routes without an object id in the URL, with where their tenant isolation is tested.
Each area adds its own dict; the matrix merges them."""

TENANTS: dict[str, str] = {}
EXAMPLES: dict[str, str] = {"spend": "tests/training/test_dataset_spend.py::test_spend_only_counts_the_callers_tasks"}
JOBS: dict[str, str] = {"base-models": "tests/training/test_jobs_api.py::test_base_models_catalogue_is_shared"}
ROUTING: dict[str, str] = {
    "routing-table": "tests/routing/test_table_endpoint.py::test_a_key_never_reads_another_tenants_table_or_etag",
    "routing-decide": "tests/routing/test_decide.py::test_decide_uses_only_the_callers_table",
    "routing-outcomes": "tests/routing/test_outcomes.py::test_outcomes_are_stored_for_the_callers_tenant_only",
    "routing-tasks": "tests/routing/test_outcomes.py::test_tasks_overview_shows_only_the_callers_tasks",
    "routing-settings": "tests/routing/test_publish.py::test_settings_and_draft_are_per_tenant",
    "routing-draft": "tests/routing/test_publish.py::test_settings_and_draft_are_per_tenant",
}

NON_OBJECT_ROUTES: dict[str, str] = {**TENANTS, **EXAMPLES, **JOBS, **ROUTING}
