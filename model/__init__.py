"""Tweet Triage inference library: contracts shared by training and the service.

Depends on neither `training` nor `service`.
"""

__version__ = "0.1.0"
