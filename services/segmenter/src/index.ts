export { segmenterService, main } from './server';
