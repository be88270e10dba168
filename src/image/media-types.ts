/**
 * The media types minidock understands, from the OCI image-spec and the
 * Docker image manifest v2 schema 2, with predicates over them.
 */

export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerManifestSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

/** The Accept header value for manifest requests, most preferred first. */
export const manifestAccept = [
  MediaType.ociIndex,
  MediaType.ociManifest,
  MediaType.dockerManifestList,
  MediaType.dockerManifest,
].join(', ');

/** True for an OCI index or a Docker manifest list. */
export function isIndex(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

/** True for an OCI image manifest or a Docker schema 2 manifest. */
export function isManifest(mediaType: string | undefined): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}

/** True for a Docker schema 1 manifest, which minidock refuses. */
export function isSchema1(mediaType: string | undefined): boolean {
  return (
    mediaType === MediaType.dockerManifestSchema1 ||
    mediaType === MediaType.dockerManifestSchema1Signed
  );
}

/**
 * True for layers that registries may not hold (Docker's foreign layers,
 * OCI's non-distributable ones): fetched from the descriptor's `urls`.
 */
export function isForeignLayer(mediaType: string): boolean {
  return mediaType === MediaType.dockerForeignLayerGzip || mediaType.startsWith('application/vnd.oci.image.layer.nondistributable.');
}

/** How a layer blob is compressed, or undefined when the media type is not a layer. */
export type Compression = 'none' | 'gzip' | 'zstd';

/** Returns the compression of a layer media type, or undefined if it is not a known layer type. */
export function layerCompression(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case MediaType.ociLayer:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar':
      return 'none';
    case MediaType.ociLayerGzip:
    case MediaType.ociLayerNondistributableGzip:
    case MediaType.dockerLayerGzip:
    case MediaType.dockerForeignLayerGzip:
      return 'gzip';
    case MediaType.ociLayerZstd:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd':
      return 'zstd';
    default:
      return undefined;
  }
}
