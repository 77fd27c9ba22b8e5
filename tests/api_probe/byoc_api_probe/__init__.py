"""byoc-api-probe: a minimal complete byoc plugin written only against the public plugin API
(see ``byoc_api_probe.plugin``)."""

__version__ = "0.1.0"
