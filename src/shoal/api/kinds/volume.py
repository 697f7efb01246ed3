"""Volume (core/v1): the storage a pod's containers mount.

shoal's agents understand emptyDir, hostPath, secret, configMap, downwardAPI, projected
(secret, configMap, downwardAPI and service account token sources), persistentVolumeClaim,
nfs and image volumes; these are declared field by field. The cloud and legacy in-tree
sources are kept as written (``Raw``) so that manifests round-trip, and are rejected by no
one: a node simply cannot mount them.

Defaults (SetDefaults_Volume and friends): a volume with no source becomes ``emptyDir: {}``;
``defaultMode`` is 420 (0644) for secret, configMap, downwardAPI and projected volumes;
``hostPath.type`` is ""; ``serviceAccountToken.expirationSeconds`` is 3600.
"""

from __future__ import annotations

from typing import Any

from shoal.api.kinds.container import OBJECT_FIELD_SELECTOR, RESOURCE_FIELD_SELECTOR
from shoal.api.schema import Arr, Bool, Int, Obj, Quantity, Raw, Str

DEFAULT_MODE = 0o644

HOST_PATH_TYPES = (
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
)

KEY_TO_PATH = Obj(
    "io.k8s.api.core.v1.KeyToPath", {"key": Str(), "mode": Int(), "path": Str()}, required=("key", "path")
)
EMPTY_DIR = Obj("io.k8s.api.core.v1.EmptyDirVolumeSource", {"medium": Str(), "sizeLimit": Quantity()})
HOST_PATH = Obj(
    "io.k8s.api.core.v1.HostPathVolumeSource",
    {"path": Str(), "type": Str(enum=HOST_PATH_TYPES, default="")},
    required=("path",),
)
SECRET_VOLUME = Obj(
    "io.k8s.api.core.v1.SecretVolumeSource",
    {
        "defaultMode": Int(default=DEFAULT_MODE),
        "items": Arr(KEY_TO_PATH),
        "optional": Bool(),
        "secretName": Str(),
    },
)
CONFIG_MAP_VOLUME = Obj(
    "io.k8s.api.core.v1.ConfigMapVolumeSource",
    {"defaultMode": Int(default=DEFAULT_MODE), "items": Arr(KEY_TO_PATH), "name": Str(), "optional": Bool()},
)
DOWNWARD_API_FILE = Obj(
    "io.k8s.api.core.v1.DownwardAPIVolumeFile",
    {
        "fieldRef": OBJECT_FIELD_SELECTOR,
        "mode": Int(),
        "path": Str(),
        "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
    },
    required=("path",),
)
DOWNWARD_API_VOLUME = Obj(
    "io.k8s.api.core.v1.DownwardAPIVolumeSource",
    {"defaultMode": Int(default=DEFAULT_MODE), "items": Arr(DOWNWARD_API_FILE)},
)
PVC_VOLUME = Obj(
    "io.k8s.api.core.v1.PersistentVolumeClaimVolumeSource",
    {"claimName": Str(), "readOnly": Bool()},
    required=("claimName",),
)
NFS_VOLUME = Obj(
    "io.k8s.api.core.v1.NFSVolumeSource",
    {"path": Str(), "readOnly": Bool(), "server": Str()},
    required=("server", "path"),
)
IMAGE_VOLUME = Obj("io.k8s.api.core.v1.ImageVolumeSource", {"pullPolicy": Str(), "reference": Str()})

VOLUME_PROJECTION = Obj(
    "io.k8s.api.core.v1.VolumeProjection",
    {
        # Cluster trust bundles and pod certificates need APIs shoal does not serve; kept as written.
        "clusterTrustBundle": Raw(),
        "configMap": Obj(
            "io.k8s.api.core.v1.ConfigMapProjection",
            {"items": Arr(KEY_TO_PATH), "name": Str(), "optional": Bool()},
        ),
        "downwardAPI": Obj("io.k8s.api.core.v1.DownwardAPIProjection", {"items": Arr(DOWNWARD_API_FILE)}),
        "podCertificate": Raw(),
        "secret": Obj(
            "io.k8s.api.core.v1.SecretProjection",
            {"items": Arr(KEY_TO_PATH), "name": Str(), "optional": Bool()},
        ),
        "serviceAccountToken": Obj(
            "io.k8s.api.core.v1.ServiceAccountTokenProjection",
            {"audience": Str(), "expirationSeconds": Int(format="int64", default=3600), "path": Str()},
            required=("path",),
        ),
    },
)
PROJECTED_VOLUME = Obj(
    "io.k8s.api.core.v1.ProjectedVolumeSource",
    {"defaultMode": Int(default=DEFAULT_MODE), "sources": Arr(VOLUME_PROJECTION)},
)

# Sources declared field by field, in the order Kubernetes checks them.
MODELLED_SOURCES: dict[str, Obj] = {
    "emptyDir": EMPTY_DIR,
    "hostPath": HOST_PATH,
    "secret": SECRET_VOLUME,
    "nfs": NFS_VOLUME,
    "persistentVolumeClaim": PVC_VOLUME,
    "downwardAPI": DOWNWARD_API_VOLUME,
    "configMap": CONFIG_MAP_VOLUME,
    "projected": PROJECTED_VOLUME,
    "image": IMAGE_VOLUME,
}
# Sources kept as written: cloud disks, legacy network filesystems, CSI and generic
# ephemeral volumes (which need storage APIs shoal does not serve).
RAW_SOURCES = (
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "iscsi",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
)
SOURCES = (*MODELLED_SOURCES, *RAW_SOURCES)

VOLUME = Obj(
    "io.k8s.api.core.v1.Volume",
    {"name": Str(), **MODELLED_SOURCES, **{source: Raw() for source in RAW_SOURCES}},
    required=("name",),
)


def default_volume(volume: dict[str, Any]) -> None:
    """A volume that names no source is an emptyDir (SetDefaults_Volume)."""
    if not any(source in volume for source in SOURCES):
        volume["emptyDir"] = {}
