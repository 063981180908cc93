using System.Text;
using System.Text.Json;

namespace OnionDrop.Sealing;

/// <summary>What the opener keeps of a manifest whose files it has checked against the ones opened.</summary>
/// <param name="Message">as UTF-8, the bytes of message.txt</param>
/// <param name="Agrees">its files are the ones opened, in order: the caller says so only after the stream's own checks</param>
internal sealed record ReadManifest(string Reference, string ReceivedAt, byte[] Message, bool Agrees);

/// <summary>
/// Reads the manifest record (docs/sealed-format.md, "Manifest") as it streams, comparing each file it lists with
/// the one opened, so that its names are never held: 64 MiB of them, read whole and parsed into strings beside the
/// opened ones, made a valid submission cost the opener over half a gigabyte. Unknown members are refused, and so is
/// a member given twice (parsers differ on which of the two counts, and another opener could show the other).
/// </summary>
internal static class ManifestReader
{
    private const string NotJson = "manifest is not valid JSON";
    private static readonly string[] TopMembers = ["format", "reference", "receivedAt", "message", "files"];
    private static readonly string[] FileMembers = ["name", "contentType", "size", "sha256"];
    private static readonly byte[] FormatName = Encoding.UTF8.GetBytes(Manifest.FormatName);

    /// <exception cref="SealedFormatException">the manifest is refused</exception>
    public static ReadManifest Read(Stream plain, long length, IReadOnlyList<VerifiedFile> opened)
    {
        var json = new JsonSource(plain, length);
        var reader = JsonSource.Start();
        string? reference = null, receivedAt = null;
        byte[]? message = null;
        bool knownFormat = false, listed = false, complete = true, agrees = true;
        var count = 0;
        try
        {
            json.Read(ref reader);
            if (reader.TokenType == JsonTokenType.Null) complete = false;
            else
            {
                Expect(reader.TokenType == JsonTokenType.StartObject);
                var seen = new bool[TopMembers.Length];
                while (Next(json, ref reader) == JsonTokenType.PropertyName)
                {
                    var member = Member(ref reader, seen, TopMembers);
                    Next(json, ref reader);
                    Expect(member == 4 || reader.TokenType is JsonTokenType.String or JsonTokenType.Null);
                    var isNull = reader.TokenType == JsonTokenType.Null;
                    switch (member)
                    {
                        case 0: knownFormat = !isNull && json.Utf8(ref reader).SequenceEqual(FormatName); break;
                        case 1: reference = reader.GetString(); break;
                        case 2: receivedAt = reader.GetString(); break;
                        case 3: message = isNull ? null : json.Utf8(ref reader).ToArray(); break;
                        default:
                            if (reader.TokenType == JsonTokenType.Null) break;
                            Expect(reader.TokenType == JsonTokenType.StartArray);
                            listed = true;
                            while (Next(json, ref reader) != JsonTokenType.EndArray)
                            {
                                if (count == SealedFormat.MaxFiles) throw new SealedFormatException($"manifest lists more than {SealedFormat.MaxFiles} files");
                                var file = count < opened.Count ? opened[count] : null;
                                count++;
                                if (reader.TokenType == JsonTokenType.Null) { complete = false; continue; }
                                agrees &= ReadFile(json, ref reader, file, ref complete);
                            }
                            break;
                    }
                }
            }
            if (json.Read(ref reader)) throw new JsonException("data after the manifest's object");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException) { throw new SealedFormatException(NotJson); }
        catch (EndOfStreamException) { throw new SealedFormatException("malformed contents: the stream ends inside a record"); }

        if (!complete || !knownFormat || reference is null || receivedAt is null || message is null || !listed)
            throw new SealedFormatException("manifest is incomplete or of an unknown format");
        if (!Manifest.TryParseTime(receivedAt, out _)) throw new SealedFormatException("manifest has an invalid receivedAt");
        if (Encoding.UTF8.GetCharCount(message) > SealedFormat.MaxMessageChars)
            throw new SealedFormatException($"manifest's message is longer than {SealedFormat.MaxMessageChars} characters");
        return new ReadManifest(reference, receivedAt, message, agrees && count == opened.Count);
    }

    /// <summary>One entry of "files", compared with <paramref name="file"/> (null: more entries than files opened).</summary>
    private static bool ReadFile(JsonSource json, ref Utf8JsonReader reader, VerifiedFile? file, ref bool complete)
    {
        Expect(reader.TokenType == JsonTokenType.StartObject);
        var seen = new bool[FileMembers.Length];
        var agrees = file is not null;
        long size = 0;
        while (Next(json, ref reader) == JsonTokenType.PropertyName)
        {
            var member = Member(ref reader, seen, FileMembers);
            Next(json, ref reader);
            if (member == 2)
            {
                Expect(reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out size));
                continue;
            }
            Expect(reader.TokenType is JsonTokenType.String or JsonTokenType.Null);
            if (reader.TokenType == JsonTokenType.Null) { complete = false; continue; }
            var value = json.Utf8(ref reader);
            agrees &= file is not null && member switch
            {
                0 => value.SequenceEqual(file.Name),
                1 => value.SequenceEqual(file.ContentType),
                _ => Ascii.Equals(value, file.Sha256Hex),
            };
        }
        for (var i = 0; i < seen.Length; i++) complete &= seen[i] || i == 2; // a missing size is 0, as System.Text.Json read it
        return agrees && size == file!.Size;
    }

    private static JsonTokenType Next(JsonSource json, ref Utf8JsonReader reader)
    {
        // The document ends only after its object: a reader at the end of the input has thrown before this.
        json.Read(ref reader);
        return reader.TokenType;
    }

    /// <summary>Which of <paramref name="names"/> the property is; an unknown one, or one seen before, is refused.</summary>
    private static int Member(ref Utf8JsonReader reader, bool[] seen, string[] names)
    {
        for (var i = 0; i < names.Length; i++)
        {
            if (!reader.ValueTextEquals(names[i])) continue;
            Expect(!seen[i]);
            seen[i] = true;
            return i;
        }
        throw new JsonException("unknown member");
    }

    private static void Expect(bool shape)
    {
        if (!shape) throw new JsonException("not a manifest's shape");
    }
}
