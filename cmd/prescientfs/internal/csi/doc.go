// Package csi is prescientfs's CSI node plugin: the Identity and Node
// services over gRPC on a unix socket. There is no controller service:
// volumes are static PersistentVolumes or CSI inline ephemeral volumes,
// mounted read-only whatever access mode is asked.
//
// Each published target gets its own mount (see package mounter) with its
// own credentials and memory budget; a republish (the CSIDriver sets
// requiresRepublish) rotates the credentials of a live mount, and mounts
// afresh over a dead one so that pods that bind-mounted the target with
// HostToContainer propagation read again.
package csi
