export { agentService, main } from './server';
