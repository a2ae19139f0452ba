export { launchServices, serviceEntry, SERVICE_ORDER } from './launcher';
export type { Launch, LaunchedService, LaunchOptions } from './launcher';
