"""fedpia: federated fine-tuning of vision-language foundation models with adapters.

Headline algorithm: FedPIA (Saha et al., AAAI 2025, arXiv:2412.14424), permuting and integrating
adapters with Wasserstein barycenters on the server and on the clients.
"""

__version__ = "0.1.0"
