import { Resvg } from '@resvg/resvg-js';

/**
 * Rasterises an SVG document to PNG bytes with system fonts (Debian:
 * fonts-dejavu-core). Without any font installed the shapes still render and
 * text is left out; the HTML report embeds the SVG itself, so it keeps the text.
 */
export function svgToPng(svg: string, scale = 1): Uint8Array {
  const resvg = new Resvg(svg, {
    fitTo: scale === 1 ? { mode: 'original' } : { mode: 'zoom', value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}
