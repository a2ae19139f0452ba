export { trainerService, main } from './server';
