"""SpineMed core: studies, geometry, spine levels, inference, reports, storage. Never imports Qt or VTK."""
