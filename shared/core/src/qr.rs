//! QR codes as PNG images, rendered once when a QR is issued and kept with it as a data URL
//! (reads, `GET /devices/{device_id}/qr?format=png` included, use the kept image).

use base64::Engine;
use image::codecs::png::{CompressionType, FilterType};
use image::{ImageEncoder, Luma};
use qrcode::QrCode;

/// How a PNG data URL starts.
pub const DATA_URL_PREFIX: &str = "data:image/png;base64,";

/// The PNG of a QR encoding `code` (at least 264 px wide, with a quiet zone). Compressed
/// hard (about half the size of the fast setting): it is rendered once and served often.
pub fn png(code: &str) -> Result<Vec<u8>, String> {
    let qr = QrCode::new(code.as_bytes()).map_err(|e| format!("QR encoding failed: {e}"))?;
    let img = qr
        .render::<Luma<u8>>()
        .min_dimensions(264, 264)
        .quiet_zone(true)
        .build();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        CompressionType::Best,
        FilterType::Adaptive,
    )
    .write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::L8,
    )
    .map_err(|e| format!("PNG encoding failed: {e}"))?;
    Ok(out)
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
        assert!(
            super::data_url("x")
                .unwrap()
                .starts_with("data:image/png;base64,iVBOR")
        );
    }
}
