//! QR codes as PNG images, rendered once when a QR is issued and kept with it as a data URL
//! (reads, `GET /devices/{device_id}/qr?format=png` included, use the kept image).

use base64::Engine;
use qrcode::QrCode;
use qrcode::render::{Canvas, Pixel};

/// How a PNG data URL starts.
pub const DATA_URL_PREFIX: &str = "data:image/png;base64,";

/// The PNG of a QR encoding `code` (at least 264 px wide, with a quiet zone): 8-bit
/// grayscale, compressed hard (about half the size of the fast setting) with each row's best
/// filter, as it is rendered once and served often.
pub fn png(code: &str) -> Result<Vec<u8>, String> {
    let qr = QrCode::new(code.as_bytes()).map_err(|e| format!("QR encoding failed: {e}"))?;
    let img = qr
        .render::<Gray>()
        .min_dimensions(264, 264)
        .quiet_zone(true)
        .build();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, img.width, img.height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    encoder.set_filter(png::Filter::Adaptive);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(&img.pixels)?;
            writer.finish()
        })
        .map_err(|e| format!("PNG encoding failed: {e}"))?;
    Ok(out)
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
        let mut reader = png::Decoder::new(std::io::Cursor::new(&p))
            .read_info()
            .unwrap();
        let info = reader.info();
        assert!(info.width >= 264 && info.width == info.height);
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut pixels).unwrap();
        // The quiet zone is light; the finder pattern's corner, just inside it, is dark.
        assert_eq!(pixels[0], 255);
        assert!(pixels.contains(&0));
        assert!(
            super::data_url("x")
                .unwrap()
                .starts_with("data:image/png;base64,iVBOR")
        );
    }
}
