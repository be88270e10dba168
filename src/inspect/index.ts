/**
 * Looking inside images and containers without running or mounting them:
 * their manifests, configs and history, what each layer adds, changes and
 * deletes, the merged filesystem (one file, one directory, or all of it as
 * a tar), how two filesystems differ, and how much space later layers
 * waste (dive's efficiency).
 *
 * Everything is read from the unpacked layer directories under the store's
 * layers/ (overlay format: a whiteout is a 0/0 character device, an opaque
 * directory carries trusted.overlay.opaque "y"), which show exactly what a
 * container sees; a container adds its upper directory on top. Layers are
 * walked in one sorted order and merged as sorted streams, so memory grows
 * with the depth of the tree and the largest directory, not with the
 * number of files. Nothing is opened for writing but an export's output,
 * and nothing is mounted.
 *
 * The remote functions read a registry and store nothing.
 *
 * Limitations:
 * - A layer directory does not record which name of a hard-link group its
 *   tar wrote first: the first in path order is taken as the group's file,
 *   the others as links to it.
 * - Directories an unpacked layer created only as parents of its entries
 *   (with no tar entry of their own) look like entries of the layer.
 * - Exported tars carry no extended attributes and no sockets.
 * - A remote layer listing reports entries before the blob's digest can be
 *   checked; a mismatch fails the command at the end.
 */
export { walkLayer, splitPath, keyOf, type EntryFacts, type EntryKind, type LayerEntry, type WalkOptions } from './walk.js';
export { mergeWalks, View, within, type Row, type Visible } from './merge.js';
export { layerChanges, mergedEntries, viewChanges, type Change, type ChangeOp, type DeletedBy } from './changes.js';
export { measureEfficiency, type Efficiency, type EfficiencyOptions, type Offender } from './efficiency.js';
export { exportTar, listDirectory, resolvePath, splitImagePath, type ResolvedPath } from './files.js';
export { historyRows, pickLayer, readImageInfo, type HistoryRow, type ImageInfo, type LayerInfo } from './describe.js';
export { fetchRemoteImage, listRemoteLayer, type RemoteImage, type TarListing } from './remote.js';
