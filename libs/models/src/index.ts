export { Backend, BACKEND_PREFERENCE, BackendUnavailableError, isBackend, selectBackend } from './backend';
export type { BackendChoice, PackageLoader } from './backend';
