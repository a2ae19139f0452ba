export { reliabilityService, main } from './server';
