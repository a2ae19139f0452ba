export { writeFileAtomic, writeJsonAtomic } from './atomic';
