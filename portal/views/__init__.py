"""The portal's pages, one module per area; each view is a thin face over services and
selectors (``member_required`` gives it the tenant and the member)."""
