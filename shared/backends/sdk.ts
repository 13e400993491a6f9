/**
 * The cloud SDKs, loaded when the first backend that needs one is made: a process that never
 * uses S3 or GCS does not hold their clients in memory (about 11 and 25 MB), and one that does
 * loads each once (`require` keeps it).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const s3Sdk = (): typeof import('@aws-sdk/client-s3') => require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
export const s3Upload = (): typeof import('@aws-sdk/lib-storage') => require('@aws-sdk/lib-storage') as typeof import('@aws-sdk/lib-storage');
export const gcsSdk = (): typeof import('@google-cloud/storage') => require('@google-cloud/storage') as typeof import('@google-cloud/storage');
