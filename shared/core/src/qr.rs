//! QR codes as PNG images, rendered once when a QR is issued and kept with it as a data URL
//! (reads, `GET /devices/{device_id}/qr?format=png` included, use the kept image).

use base64::Engine;
use qrcode::QrCode;
use qrcode::render::{Canvas, Pixel};

/// How a PNG data URL starts.
pub const DATA_URL_PREFIX: &str = "data:image/png;base64,";

/// The PNG of a QR encoding `code` (at least 264 px wide, with a quiet zone): one bit per
/// pixel (a QR has only dark and light), compressed hard with each row's best filter, as it
/// is rendered once and served often, inline in every device answer that shows it.
pub fn png(code: &str) -> Result<Vec<u8>, String> {
    encode(&render(code)?, png::BitDepth::One)
}

fn render(code: &str) -> Result<GrayImage, String> {
    let qr = QrCode::new(code.as_bytes()).map_err(|e| format!("QR encoding failed: {e}"))?;
    Ok(qr
        .render::<Gray>()
        .min_dimensions(264, 264)
        .quiet_zone(true)
        .build())
}

/// `img` as a grayscale PNG of `depth` bits per pixel (`One` or `Eight`).
fn encode(img: &GrayImage, depth: png::BitDepth) -> Result<Vec<u8>, String> {
    let data = match depth {
        png::BitDepth::One => pack_bits(img),
        _ => img.pixels.clone(),
    };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, img.width, img.height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::High);
    encoder.set_filter(png::Filter::Adaptive);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(&data)?;
            writer.finish()
        })
        .map_err(|e| format!("PNG encoding failed: {e}"))?;
    Ok(out)
}

/// The rows of `img` at one bit per pixel, as PNG lays them out: the leftmost pixel in the
/// highest bit, 1 for light, each row padded to a whole byte.
fn pack_bits(img: &GrayImage) -> Vec<u8> {
    let width = img.width as usize;
    let mut out = Vec::with_capacity(width.div_ceil(8) * img.height as usize);
    for row in img.pixels.chunks(width) {
        for eight in row.chunks(8) {
            let byte = eight
                .iter()
                .enumerate()
                .fold(0u8, |b, (i, &p)| b | (u8::from(p >= 128) << (7 - i)));
            out.push(byte);
        }
    }
    out
}

/// An 8-bit grayscale pixel, for rendering a QR without an imaging library.
#[derive(Clone, Copy)]
struct Gray(u8);

/// A rendered QR: `width * height` grayscale bytes, row by row.
struct GrayImage {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Pixel for Gray {
    type Image = GrayImage;
    type Canvas = GrayCanvas;

    fn default_color(color: qrcode::Color) -> Self {
        Gray(color.select(0, 255))
    }
}

struct GrayCanvas {
    dark: u8,
    image: GrayImage,
}

impl Canvas for GrayCanvas {
    type Pixel = Gray;
    type Image = GrayImage;

    fn new(width: u32, height: u32, dark: Gray, light: Gray) -> Self {
        let pixels = vec![light.0; width as usize * height as usize];
        GrayCanvas {
            dark: dark.0,
            image: GrayImage {
                width,
                height,
                pixels,
            },
        }
    }

    fn draw_dark_pixel(&mut self, x: u32, y: u32) {
        let at = y as usize * self.image.width as usize + x as usize;
        self.image.pixels[at] = self.dark;
    }

    fn into_image(self) -> GrayImage {
        self.image
    }
}

/// The PNG as a `data:image/png;base64,...` URL.
pub fn data_url(code: &str) -> Result<String, String> {
    Ok(format!(
        "{DATA_URL_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(png(code)?)
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_png() {
        let p = super::png("2@abc,def,ghi,jkl").unwrap();
        assert_eq!(&p[..8], b"\x89PNG\r\n\x1a\n");
        let reader = png::Decoder::new(std::io::Cursor::new(&p))
            .read_info()
            .unwrap();
        let info = reader.info();
        assert!(info.width >= 264 && info.width == info.height);
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(info.bit_depth, png::BitDepth::One);
        assert!(
            super::data_url("x")
                .unwrap()
                .starts_with("data:image/png;base64,iVBOR")
        );
    }

    /// Decodes a PNG to one byte per pixel (0 dark, 255 light).
    fn pixels(png: &[u8]) -> Vec<u8> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut out = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut out).unwrap();
        out.truncate(frame.buffer_size());
        // EXPAND scales 1-bit samples to 8 bits: 0 and 255.
        out
    }

    #[test]
    fn one_bit_image_is_the_rendered_qr_and_smaller() {
        // A code of the length WhatsApp's QR codes have (about 240 characters).
        let code = format!(
            "2@{},{},{},{}",
            "A".repeat(150),
            "b".repeat(44),
            "c".repeat(44),
            "d"
        );
        let img = super::render(&code).unwrap();
        let one = super::encode(&img, png::BitDepth::One).unwrap();
        let eight = super::encode(&img, png::BitDepth::Eight).unwrap();
        assert_eq!(pixels(&one), img.pixels, "the same pixels");
        assert_eq!(pixels(&eight), img.pixels);
        // The quiet zone is light; the finder pattern's corner, just inside it, is dark.
        assert_eq!(img.pixels[0], 255);
        assert!(img.pixels.contains(&0));
        assert!(
            one.len() < eight.len(),
            "{} vs {} bytes",
            one.len(),
            eight.len()
        );
        eprintln!(
            "QR PNG: {} bytes at 1 bit, {} at 8 bits",
            one.len(),
            eight.len()
        );
    }

    #[test]
    fn bits_pack_leftmost_first_and_pad_each_row() {
        let img = super::GrayImage {
            width: 10,
            height: 2,
            pixels: [[255, 0, 0, 0, 0, 0, 0, 255, 0, 255], [0; 10]].concat(),
        };
        assert_eq!(super::pack_bits(&img), vec![0b1000_0001, 0b0100_0000, 0, 0]);
    }
}
