export { PALETTE, boxPlot, histogramChart, lineChart, niceTicks } from './charts';
export type { Axes, Series } from './charts';
export { svgToPng } from './render';
export { Report, meanStd } from './report';
